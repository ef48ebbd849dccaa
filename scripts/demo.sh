#!/usr/bin/env bash
# Placeholder: the wizard issue replaces this with the real demo.
echo "make demo: the wizard is not built yet." >&2
exit 1
