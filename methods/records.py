"""The plain-data records methods hand the plumbing, named by what they hold (torch-free).

Hyper-parameters are never among them — they travel as option dataclasses; these are data:
"""

from __future__ import annotations

from typing import Any

#: a JSON-compatible mapping read from or written to a file, a log or an API (a manifest, a lease,
#: a plan, a record); the names below say which
JsonObject = dict[str, Any]
#: what determines an artifact (a prerequisite's piece, a cached statistic), as canonical JSON
Description = JsonObject
#: result-row columns a component contributes (an objective's resolved settings, a teacher's accuracy)
RowFields = JsonObject
#: a distillation loop's progress at a step (``step``, ``total_steps``, ``loss``, ``probe_val_acc``)
Progress = JsonObject
#: a resumable distillation state (phase, step, gathered rows, objective and optimiser state)
State = JsonObject
#: a saved network's or trajectory's metadata (architecture, shape, settings, accuracies)
Meta = JsonObject
#: an entry's manifest (description, ``sha256`` or ``files``, ``size``, ``created_at``, ``producer``)
Manifest = JsonObject
#: option values as a sweep file or a preset writes them (name → value), before validation makes
#: them an options object (the form a sweep file, a preset and a trial key's hash hold)
OptionValues = dict[str, Any]
#: prerequisite name → what it loaded on this worker (a teacher network, expert trajectories): an
#: objective's or a student's ``needs``
Needs = dict[str, Any]

__all__ = ["Description", "JsonObject", "Manifest", "Meta", "Needs", "OptionValues", "Progress", "RowFields", "State"]
