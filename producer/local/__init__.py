"""The local cluster: the bundled broker, a worker (and Flower) started as child processes of
this one, their records for `farpool down`, and a pool's request that they call its script."""
