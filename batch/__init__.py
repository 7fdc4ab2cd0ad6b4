"""The headless front door: matting many images without ComfyUI, on this machine or on a Ray cluster.

``python -m <pack>.batch --help`` (:mod:`.cli`). Beside ``nodes/`` and on the same ``matting/`` core:
``inputs`` (what to matte and each input's prompt), ``work`` (a worker: one loaded model, rows in,
PNG bytes out), ``runner`` (local or Ray Data), ``sink`` (the output folder: atomic writes, resume,
failures). Nothing here is imported when ComfyUI loads the pack; Ray only by ``runner.run_ray``.
"""
