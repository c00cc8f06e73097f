"""ffnet-nas: blockwise neural-architecture search over the FFNet family."""
