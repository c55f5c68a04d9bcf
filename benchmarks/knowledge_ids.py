"""The items the tags protocol needs knowledge for (the movies tagged with one of its tags),
then the most popular movies with none of those tags as distractors, one id per line.

    RECAGENT_HOME=... python benchmarks/knowledge_ids.py ../shared/data/ml-latest-small/tags.csv \
        --distractors 150 > benchmarks/.work/knowledge_ids.txt
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))

from recagent.commands.knowledge import chosen_items
from recagent.data.dataset import Dataset
from recagent.evals.tags import tagged_items
from recagent.workspace import Workspace


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tags", type=Path)
    parser.add_argument("--dataset", default="ml-latest-small")
    parser.add_argument("--distractors", type=int, default=150)
    parser.add_argument("--home", type=Path, default=None)
    args = parser.parse_args()
    home = args.home or Path(os.environ.get("RECAGENT_HOME", "."))
    ds = Dataset.load(Workspace(home), args.dataset)
    tagged = tagged_items(args.tags, ds)
    taken = set(tagged)
    by_popularity = [it.item_id for it in chosen_items(ds, None, None)]  # as --items orders
    distractors = [i for i in by_popularity if i not in taken][: args.distractors]
    print("\n".join(tagged + distractors))


if __name__ == "__main__":
    main()
