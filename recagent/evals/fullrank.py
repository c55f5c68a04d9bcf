"""Full-ranking evaluation of any `Scorer` on the leave-one-out split (the function lives in
`recagent.models.evaluation`, where training validates with it)."""

from recagent.models.evaluation import rank_cases

__all__ = ["rank_cases"]
