"""The sweep file: YAML → typed, validated spec → the plan. Torch- and Ray-free."""
