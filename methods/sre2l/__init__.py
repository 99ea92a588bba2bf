"""SRe²L's recover (Yin, Xing & Shen 2023): statistics matching + cross-entropy."""
