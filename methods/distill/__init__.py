"""The distillation framework: the objective contract, the loop, a trial's options, the pipeline."""
