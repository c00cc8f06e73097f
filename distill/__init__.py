"""Blockwise knowledge distillation (BKD) of every block choice of a space, and assembly.

    choices.py   (position, choice) pairs of a space, parsed from `Arch.blocks()`
    blocks.py    the student module for one choice, its inputs/targets, the NSR loss
    features.py  teacher features at every position, cached on disk (float16)
    teacher.py   the teacher file: its format, save_teacher, read_teacher_info, load_teacher
    train.py     train one block, held-out NSR, NaN/inf -> failed
    library.py   the block library: weight files + blocks.csv, resumable, joblib-parallel
    run.py       the whole pipeline for one space (what `ffnet-nas distill` calls)
    assemble.py  a full FFNet for any point from the library, adapters folded exactly

Imports `space` and `ffnet_nas.settings` (the block training settings, which import only
`space`), never the rest of `ffnet_nas`: data sets are handed in by the caller.
"""
