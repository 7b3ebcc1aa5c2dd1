from __future__ import annotations

import pytest

from gdscope.errors import GdscopeError
from gdscope.files import figure_format, write_atomic, write_text


def test_write_is_atomic_and_cleans_up_on_failure(tmp_path):
    target = tmp_path / "a.txt"

    def boom(tmp):
        tmp.write_text("partial")
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        write_atomic(target, boom)
    assert list(tmp_path.iterdir()) == []


def test_no_silent_overwrite(tmp_path):
    target = write_text(tmp_path / "a.txt", "one")
    with pytest.raises(GdscopeError, match="already exists"):
        write_text(target, "two")
    assert target.read_text() == "one"
    write_text(target, "three", force=True)
    assert target.read_text() == "three"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_written_files_get_the_umask_mode(tmp_path):
    import os

    mask = os.umask(0o022)
    try:
        target = write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(mask)
    assert target.stat().st_mode & 0o777 == 0o644


def test_missing_directory(tmp_path):
    with pytest.raises(GdscopeError, match="does not exist"):
        write_text(tmp_path / "nope" / "a.txt", "x")


def test_formats():
    assert figure_format("a.PNG") == "png"
    assert figure_format("a", "svg") == "svg"
    with pytest.raises(GdscopeError):
        figure_format("a.jpg")


def test_a_progress_file_is_read_back_only_by_its_own_computation(tmp_path):
    import numpy as np

    from gdscope.files import load_progress, save_progress

    path = tmp_path / "p.npz"
    assert load_progress(path, "k1", differs="x") is None  # nothing saved yet
    save_progress(path, "k1", {"loss": np.arange(6.0).reshape(2, 3)})
    state = load_progress(path, "k1", differs="x", shapes={"loss": (2, 3)})
    assert state is not None and state["loss"].tolist() == [[0, 1, 2], [3, 4, 5]]
    for key, shapes in (("k2", None), ("k1", {"loss": (3, 2)}), ("k1", {"done": (2, 3)})):
        with pytest.raises(GdscopeError, match=r"belongs to another computation \(x\)"):
            load_progress(path, key, differs="x", shapes=shapes)
    path.write_text("not an archive")
    with pytest.raises(GdscopeError, match="is not a gdscope resume file"):
        load_progress(path, "k1", differs="x")


def test_a_fingerprint_tells_apart_values_dtypes_shapes_and_text():
    import numpy as np
    import torch

    from gdscope.files import fingerprint

    a = np.arange(6.0)
    assert fingerprint(a, "x") == fingerprint(torch.arange(6.0, dtype=torch.float64), "x")
    others = [
        fingerprint(a, "y"),
        fingerprint(a.reshape(2, 3), "x"),
        fingerprint(a.astype(np.float32), "x"),
        fingerprint(a + 1e-12, "x"),
        fingerprint("x", a),
    ]
    assert len({fingerprint(a, "x"), *others}) == 6


def test_a_folder_or_a_place_that_takes_no_file_is_refused_before_any_work(tmp_path):
    from pathlib import Path

    from gdscope.files import check_target

    (tmp_path / "d.png").mkdir()
    with pytest.raises(GdscopeError, match="is a directory"):
        check_target(tmp_path / "d.png", force=True)
    if Path("/proc/self").is_dir():  # a folder nobody can create files in, even as root
        with pytest.raises(GdscopeError, match="cannot write in /proc/self"):
            check_target("/proc/self/x.json")
    assert check_target(tmp_path / "ok.png") == tmp_path / "ok.png"
    assert [p.name for p in tmp_path.iterdir()] == ["d.png"]  # the probe file is gone


def test_a_directorys_content_sha256_covers_its_files_names_and_bytes(tmp_path):
    from gdscope.files import check_unchanged, content_sha256

    (tmp_path / "rec").mkdir()
    (tmp_path / "rec" / "index.json").write_text("{}")
    (tmp_path / "rec" / "snapshots.f32").write_bytes(b"1234")
    pinned = content_sha256(tmp_path / "rec")
    check_unchanged(tmp_path / "rec", pinned)
    (tmp_path / "rec" / "snapshots.f32").write_bytes(b"1235")
    with pytest.raises(GdscopeError, match="has changed since the figure was made"):
        check_unchanged(tmp_path / "rec", pinned)
    changed = content_sha256(tmp_path / "rec")
    (tmp_path / "rec" / "snapshots.f32").rename(tmp_path / "rec" / "other.f32")
    assert content_sha256(tmp_path / "rec") != changed  # the same bytes under another name
    # What the board caches beside a recording (hidden names) is not the recording.
    renamed = content_sha256(tmp_path / "rec")
    (tmp_path / "rec" / ".board").mkdir()
    (tmp_path / "rec" / ".board" / "plane-3-11.json").write_text("{}")
    (tmp_path / "rec" / ".DS_Store").write_bytes(b"x")
    assert content_sha256(tmp_path / "rec") == renamed
    (tmp_path / "rec" / "sub").mkdir()
    (tmp_path / "rec" / "sub" / "more.bin").write_bytes(b"1")
    assert content_sha256(tmp_path / "rec") != renamed


def test_a_folder_for_outputs_is_refused_in_one_true_line_and_nothing_is_left(tmp_path):
    from pathlib import Path

    from gdscope.files import check_folder, check_target, make_folder

    (tmp_path / "a.png").write_text("a file")
    for folder in (tmp_path / "a.png", tmp_path / "a.png" / "sub", tmp_path / "a.png" / "x" / "y"):
        with pytest.raises(GdscopeError, match=f"{tmp_path / 'a.png'} is a file, not a directory"):
            check_folder(folder)
    with pytest.raises(GdscopeError, match=f"{tmp_path / 'a.png'} is a file, not a directory"):
        check_target(tmp_path / "a.png" / "x.png")  # not "directory … does not exist"
    if Path("/proc/self").is_dir():  # answers "No such file or directory", even to root
        with pytest.raises(GdscopeError, match=r"^cannot make a directory in /proc/self: it does"):
            make_folder("/proc/self/figs")
        with pytest.raises(GdscopeError, match=r"^cannot write in /proc: it does not take new"):
            check_target("/proc/x.png")
    assert check_folder(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]  # checked, not made
    assert make_folder(tmp_path / "new" / "deeper").is_dir()
    assert make_folder(tmp_path / "new") == tmp_path / "new"  # there already: fine


@pytest.mark.parametrize("check", ["target", "folder"])
def test_ctrl_c_while_a_folder_is_probed_leaves_no_probe_and_is_honoured_after(
    tmp_path, monkeypatch, check
):
    # Ctrl-C the moment the probe exists (the gdscope command handles it): the probe is removed
    # first, then the Ctrl-C is raised as it would have been; inside an outer deferred section
    # (a job writing what finished) it stays a request.
    import signal
    import tempfile

    from gdscope import interrupts
    from gdscope.files import check_folder, check_target

    made = []
    real_mkstemp, real_mkdtemp = tempfile.mkstemp, tempfile.mkdtemp

    def mkstemp_then_ctrl_c(*args, **kwargs):
        made.append(real_mkstemp(*args, **kwargs))
        signal.raise_signal(signal.SIGINT)
        return made[-1]

    def mkdtemp_then_ctrl_c(*args, **kwargs):
        made.append(real_mkdtemp(*args, **kwargs))
        signal.raise_signal(signal.SIGINT)
        return made[-1]

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp_then_ctrl_c)
    monkeypatch.setattr(tempfile, "mkdtemp", mkdtemp_then_ctrl_c)

    def probe() -> None:
        if check == "target":
            check_target(tmp_path / "a.png")
        else:
            check_folder(tmp_path / "new")  # made there: probed with a folder

    with interrupts.handle_sigint():
        try:
            probe()
        except KeyboardInterrupt:  # (caught: pytest would end the whole session)
            raised = True
        else:
            raised = False
        assert interrupts.requested() and list(tmp_path.iterdir()) == []
        assert raised, "the Ctrl-C pressed while probing was swallowed"
    assert len(made) == 1
    with interrupts.handle_sigint():
        with interrupts.deferred():
            probe()  # raises nothing
        assert interrupts.requested() and list(tmp_path.iterdir()) == []
