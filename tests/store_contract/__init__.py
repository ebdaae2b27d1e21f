"""The Store contract: tests every backend must pass, written against the port only
(`notifierd.store.base`), run once per backend in `backends.BACKENDS`."""
