"""Test-data generators and locators (synthetic MANO files and model data, the shared photos).

Never imported at run time.
"""
