"""`ctcdoctor scan`: the length and label checks over a whole data set, streamed into mergeable summaries.

`run` scans a set-up (its loader, a shard of it, or `Setup.sample_labels`); `metadata` and `manifest`
scan a manifest without decoding; `summary` and `counts` are the mergeable digest; `state` merges
parts and judges them (`findings` words the findings as the table-based checks do); `distributed`
runs under torchrun; `droplist` writes the ids of the samples that cannot train.
"""
