/* Fused full-batch SGD for K single-neuron configurations (gdscope's native CPU engine).
 *
 * Each configuration owns its parameters, momentum buffer and metrics for the whole run; the
 * loop over configurations is blocked by LANES so the compiler vectorizes across
 * configurations (one SIMD lane per configuration), and each block loops over all steps and
 * all data points before it moves on: state stays in registers, only the path is written.
 * The arithmetic follows torch.optim.SGD's single-tensor path and the torch.nn losses'
 * definitions; gdscope's tests compare it with the tensor engine.
 *
 * Loss codes: 0 MSE, 1 L1, 2 Huber(delta), 3 SmoothL1(beta), each as torch defines it:
 * inside |r| < c the quadratic piece h·r²/s with slope g·r/s, outside the linear piece
 * m·(|r| − c/2) with slope m·sign(r): MSE c = inf, h = 1, g = 2; L1 c = 0, m = 1;
 * Huber c = delta, h = 1/2, m = delta; SmoothL1 c = beta, h = 1/2, s = beta, m = 1
 * (beta = 0 is L1). Both pieces are computed and one selected, as in branch-free code.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#define LANES 16

#define T float
#define NAME gdscope_sgd_f32
#include "sgd_body.inc"
#undef T
#undef NAME

#define T double
#define NAME gdscope_sgd_f64
#include "sgd_body.inc"
#undef T
#undef NAME
