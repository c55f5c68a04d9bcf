"""A prepared dataset in the workspace: catalog + interactions + manifest."""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path

import numpy as np

from recagent.data.catalog import AttrValue, Catalog
from recagent.data.genres import GenreResolver, resolver_for
from recagent.data.interactions import Interactions
from recagent.data.split import LeaveOneOut
from recagent.data.titles import TitleIndex
from recagent.errors import ArtifactError
from recagent.manifest import Fingerprint, Manifest
from recagent.workspace import Workspace

ITEMS_FILE = "items.jsonl"
INTERACTIONS_FILE = "interactions.npz"
USERS_FILE = "users.jsonl"


def content_fingerprint(items_path: Path, interactions: Interactions) -> str:
    fp = Fingerprint().bytes(items_path.read_bytes())
    return interactions.fingerprint(fp).hexdigest()


class Dataset:
    """Everything recagent knows about one dataset, loaded from the workspace."""

    def __init__(
        self,
        name: str,
        catalog: Catalog,
        interactions: Interactions,
        manifest: Manifest,
        users: dict[str, dict[str, AttrValue]] | None = None,
    ) -> None:
        self.name = name
        self.catalog = catalog
        self.interactions = interactions
        self.manifest = manifest
        self.users = users or {}

    @property
    def fingerprint(self) -> str:
        return self.manifest.fingerprint

    @cached_property
    def split(self) -> LeaveOneOut:
        return LeaveOneOut(self.interactions)

    @property
    def n_items(self) -> int:
        return len(self.catalog)

    def user_history(self, user_id: str) -> list[str]:
        """A known user's full history as item ids in sequence order ([] for a new user)."""
        idx = self.interactions.user_idx_of(user_id)
        if idx is None:
            return []
        return self.catalog.ids_at(self.interactions.sequence(idx))

    @cached_property
    def popularity(self) -> np.ndarray:
        """Interaction count per item_idx (index 0 = padding)."""
        return self.interactions.item_counts(self.n_items)

    @cached_property
    def interactions_fingerprint(self) -> str:
        """The interactions by user and item *id* (item_idx moves when items are added):
        equal exactly when the same people rated the same items, with the same ratings and
        times, whatever else the catalog holds. What a model learned from."""
        data = self.interactions
        ids = np.asarray(self.catalog.item_ids, dtype=object)[data.item_idx - 1]
        fp = Fingerprint().json([str(u) for u in data.user_ids]).array(data.user_idx)
        fp.text("\x1f".join(ids.tolist()))
        for arr in (data.rating, data.timestamp):
            fp.array(arr)
        return fp.hexdigest()

    @cached_property
    def titles(self) -> TitleIndex:
        """Typo-tolerant title search over the catalog."""
        return TitleIndex(self.catalog, self.popularity)

    @cached_property
    def genres(self) -> GenreResolver:
        return resolver_for(tuple(self.catalog.genres))

    @classmethod
    def load(cls, workspace: Workspace, name: str) -> Dataset:
        lease = workspace.dataset(name).open_current()
        if lease is None:
            prepared = workspace.dataset_names()
            hint = f" (prepared: {', '.join(prepared)})" if prepared else ""
            raise ArtifactError(
                f"dataset {name!r} is not prepared in {workspace.root}{hint}; run "
                f"`recagent data prepare --dataset {name}`"
            )
        with lease:  # a new version committed meanwhile does not delete this one under us
            dataset = cls.load_folder(name, lease.folder)
        from recagent.knowledge.attach import with_knowledge

        dataset.catalog = with_knowledge(dataset.catalog, workspace, name)
        return dataset

    @classmethod
    def load_folder(cls, name: str, folder: Path) -> Dataset:
        manifest = Manifest.read(folder)
        try:
            catalog = Catalog.load_jsonl(folder / ITEMS_FILE)
            interactions = Interactions.load(folder / INTERACTIONS_FILE)
            users = {}
            if (folder / USERS_FILE).is_file():
                with (folder / USERS_FILE).open(encoding="utf-8") as fh:
                    for line in fh:
                        row = json.loads(line)
                        users[row["user_id"]] = row["attrs"]
        except (OSError, ValueError, KeyError) as exc:
            raise ArtifactError(
                f"dataset {name!r} in {folder} is damaged ({exc}); prepare it again"
            ) from exc
        return cls(name, catalog, interactions, manifest, users)

    def save(self, folder: Path) -> None:
        """Write the data files (not the manifest) into `folder`."""
        self.catalog.save_jsonl(folder / ITEMS_FILE)
        self.interactions.save(folder / INTERACTIONS_FILE)
        if self.users:
            with (folder / USERS_FILE).open("w", encoding="utf-8") as fh:
                for user_id, attrs in self.users.items():
                    fh.write(json.dumps({"user_id": user_id, "attrs": attrs}) + "\n")


__all__ = ["Dataset", "content_fingerprint"]
