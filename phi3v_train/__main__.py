"""``python -m phi3v_train`` (``torchrun -m phi3v_train``, ``accelerate launch -m phi3v_train``): the ``phi3v-train`` command."""

from phi3v_train.cli import main

main()
