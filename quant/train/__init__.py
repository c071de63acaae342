"""NumPy training: layers and optimisers (:mod:`.nn`), the zoo network (:mod:`.net`), its training
loop (:mod:`.loop`) and the demo's binarized MLP (:mod:`.binary_mlp`)."""
