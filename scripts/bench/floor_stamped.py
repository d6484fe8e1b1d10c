"""minimal_chat_proxy.py with stage stamps (stage_stamps.install_floor), for first_delta_stamps.py.
python floor_stamped.py STAMPS_FILE PORT EMULATOR_URL
"""

import runpy
import sys
from pathlib import Path

import stage_stamps

stage_stamps.install_floor(sys.argv[1])
sys.argv = [sys.argv[0], *sys.argv[2:]]
runpy.run_path(str(Path(__file__).with_name("minimal_chat_proxy.py")), run_name="__main__")
