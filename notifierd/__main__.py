from notifierd.cli.daemon import main

# Guarded: worker processes are spawned, and spawning re-imports the main module.
if __name__ == "__main__":
    raise SystemExit(main())
