"""Pure feature and label code: pandas and numpy only, no I/O, no clock, inputs never modified.

Time rule (the whole package follows it): a spine row (entity_id, cutoff_ts = T) sees only rows dated strictly
before T; its label reads the window [T, T + horizon). A state "at T" — an active subscription, an open ticket —
means "started before T and not ended before T", so an end exactly at T still counts as active/open at T, and
the same instant counts as the start of the label window (a subscription ending exactly at T is churn).

Entry points: `features.spine.build_spine`, `features.spine.training_cutoffs`, `features.spine.history_start`,
`features.labels.make_labels`, `features.build.build_features` (families and optional tables: see
`features.build`).
"""
