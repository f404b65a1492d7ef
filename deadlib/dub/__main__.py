"""``python -m deadlib.dub`` — the README's dubbing command (see deadlib.dub.dubbing)."""

from deadlib.dub.dubbing import main

if __name__ == "__main__":
    main()
