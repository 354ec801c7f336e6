"""The set-up's environment is consistent: every installed package's requirements are met, so
`scripts/setup.sh` printed no pip dependency ERROR on the way (pip prints one for each conflict
it leaves behind).
"""

import subprocess
import sys


def test_the_installed_packages_have_no_dependency_conflict():
    checked = subprocess.run([sys.executable, '-m', 'pip', 'check'], capture_output=True,
                             text=True, timeout=120)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert 'No broken requirements found' in checked.stdout
