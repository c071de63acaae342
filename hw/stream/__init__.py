"""Dataflow blocks on streams: sliding windows, pools, FIFO, width converter, threshold unit and
label select; each module holds a block's spec and its component."""
