"""Running a sweep on Ray: Tune trials, their distillation and prerequisites, resume, progress."""
