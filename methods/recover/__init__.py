"""The recover step of squeeze → recover → relabel, shared by SRe²L and the UniDD filter family."""
