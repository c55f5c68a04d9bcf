"""Workspace writes are atomic and versioned; manifests round-trip."""

from __future__ import annotations

from pathlib import Path

import pytest

from recagent.errors import ArtifactError, ConfigError
from recagent.manifest import Manifest
from recagent.workspace import VersionedDir, Workspace, atomic_path, atomic_write_text, check_name


def test_atomic_write_replaces_whole_file(tmp_path: Path) -> None:
    path = tmp_path / "a" / "f.txt"
    atomic_write_text(path, "one")
    atomic_write_text(path, "two")
    assert path.read_text() == "two"
    assert [p.name for p in path.parent.iterdir()] == ["f.txt"]


def test_atomic_path_keeps_old_file_on_failure(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    path.write_text("good")
    with pytest.raises(RuntimeError), atomic_path(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash while writing")
    assert path.read_text() == "good"
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]


def test_versioned_dir_commits_or_keeps_previous(tmp_path: Path) -> None:
    vd = VersionedDir(tmp_path / "art")
    assert vd.current() is None
    with vd.stage() as folder:
        (folder / "data").write_text("v1")
    first = vd.current()
    assert first is not None and (first / "data").read_text() == "v1"
    with pytest.raises(ValueError), vd.stage() as folder:
        (folder / "data").write_text("v2-partial")
        raise ValueError("bad input")
    assert vd.current() == first
    with vd.stage() as folder:
        (folder / "data").write_text("v2")
    current = vd.current()
    assert current is not None and (current / "data").read_text() == "v2"
    assert not first.exists()  # old versions are pruned


def test_a_version_being_read_is_not_deleted_by_a_new_commit(tmp_path: Path) -> None:
    vd = VersionedDir(tmp_path / "art")
    with vd.stage() as folder:
        (folder / "data").write_text("v1")
    lease = vd.open_current()
    assert lease is not None
    with vd.stage() as folder:
        (folder / "data").write_text("v2")
    assert (lease.folder / "data").read_text() == "v1"  # still there while leased
    assert vd.current() != lease.folder
    lease.release()
    with vd.stage() as folder:
        (folder / "data").write_text("v3")
    assert not lease.folder.exists()  # pruned once released
    kept = [p.name for p in vd.base.iterdir() if p.is_dir()]
    assert len(kept) == 1


def test_a_crashed_build_leaves_no_staging_behind(tmp_path: Path) -> None:
    vd = VersionedDir(tmp_path / "art")
    (vd.base / ".staging-dead").mkdir(parents=True)  # left by a killed builder
    with vd.stage() as folder:
        (folder / "data").write_text("v1")
    assert [p.name for p in vd.base.iterdir() if p.is_dir()] == [vd.current().name]


def test_manifest_round_trip_and_damage(tmp_path: Path) -> None:
    m = Manifest(kind="dataset", name="x", fingerprint="abc", config={"k": 1})
    m.write(tmp_path)
    back = Manifest.read(tmp_path)
    assert back == m and back.recagent_version
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ArtifactError, match="damaged"):
        Manifest.read(tmp_path)


@pytest.mark.parametrize("bad", ["..", "../x", "a/b", "-x", "x" * 200])
def test_names_cannot_escape(bad: str) -> None:
    with pytest.raises(ConfigError):
        check_name(bad)


def test_workspace_lists_only_committed(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    (ws.datasets_dir / "ghost").mkdir(parents=True)
    with ws.dataset("real").stage() as folder:
        (folder / "x").write_text("1")
    assert ws.dataset_names() == ["real"]
