"""The plain-data records methods hand the plumbing, named by what they hold (torch-free).

Hyper-parameters are never among them — they travel as option dataclasses; these are data:
"""

from __future__ import annotations

from typing import Any

#: what determines an artifact (a prerequisite's piece, a cached statistic), as canonical JSON
Description = dict[str, Any]
#: result-row columns a component contributes (an objective's resolved settings, a teacher's accuracy)
RowFields = dict[str, Any]
#: a distillation loop's progress at a step (``step``, ``total_steps``, ``loss``, ``probe_val_acc``)
Progress = dict[str, Any]
#: a resumable distillation state (phase, step, gathered rows, objective and optimiser state)
State = dict[str, Any]
#: a saved network's or trajectory's metadata (architecture, shape, settings, accuracies)
Meta = dict[str, Any]

__all__ = ["Description", "Meta", "Progress", "RowFields", "State"]
