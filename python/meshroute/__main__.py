from meshroute.cli import main

# Guarded: serve's compile process (multiprocessing "spawn") imports this module as __mp_main__.
if __name__ == "__main__":
    raise SystemExit(main())
