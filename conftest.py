"""Applies to every test folder (tests/, tests_ui/, tests_compat/): a run that leaves
a real part running fails (testbed.leaks)."""

pytest_plugins = ("testbed.leaks",)
