"""Cloud VMs of SkyPilot clusters: discovery and stop/terminate on AWS, GCP and Azure.

Each cloud sits behind one narrow interface (``VMInventory`` in base.py), chosen by
``inventories_from_specs`` (factory.py) from ``--cloud`` values. Calls block (the SDKs are
synchronous): the operator runs them in threads. Nothing here raises on a cloud's bad answer:
discovery returns what it could read and says what it could not.
"""
