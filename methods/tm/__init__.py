"""Trajectory matching (MTT, Cazenavette et al. 2022): the objective, its trajectories and its experts."""
