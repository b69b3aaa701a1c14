"""The runtime checker differential: keepalived -C and pykeep -C on one real kernel.

``generator`` writes the cases, ``guest`` runs them inside the VM against
real servers in a network namespace, ``compare`` splits the IPVS tables and
change sequences per case and judges them; ``python -m tests.differential_vm``
ties the three together on the host.
"""
