"""Networks: any ``nn.Module``'s path recorded, directions through its parameter space, its
loss evaluated on a plane (loop, vmap or Ray), projections of the path, saved surfaces."""
