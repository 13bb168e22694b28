# SPDX-License-Identifier: GPL-3.0-or-later
"""Run the ovirt-imageio daemon from a source tree: its own config loading,
logging and Server, without the systemd notification of its main() (the
stored server.py asks the config for daemon.systemd_enable, which the stored
config.py does not define).  Usage: ovirt_daemon.py CONF_DIR"""

import signal
import sys

from ovirt_imageio._internal import server

cfg = server.load_config(sys.argv[1])
server.configure_logger(cfg)
srv = server.Server(cfg)
signal.signal(signal.SIGINT, srv.terminate)
signal.signal(signal.SIGTERM, srv.terminate)
srv.start()
try:
    while srv.running:
        signal.pause()
finally:
    srv.stop()
