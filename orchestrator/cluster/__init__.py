"""Ray itself: the embedded or joined runtime, ``ddx up``/``down``, worker threads, processes."""
