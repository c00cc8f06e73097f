"""The two predictors a search scores points with, and their one loader (installed as `ffnet_nas.predictors`).

    latency/    per-unit latency tables measured on a device, and `predict_latency(arch, table)`
    accuracy    the ridge model from a point's choices (or its blocks' held-out NSR) to measured mIoU
    load        `load_predictors(...)`: which table (one rule, `choose_lut`) and which predictor a
                search, an evaluation or a run uses, as memoised callables
"""
