"""`python -m scherbelberg.emulator`: the same as `scherbelberg emulator`."""

from .command_line import emulator_command

if __name__ == "__main__":
    emulator_command(prog_name="python -m scherbelberg.emulator")
