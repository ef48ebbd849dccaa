# rescue live system: the tool is on PATH; say how to get back to the wizard.
if [ -n "${PS1:-}" ] && [ "$(id -u)" = 0 ] && [ -z "${RESCUE_CONSOLE:-}" ]; then
	echo "rescue live system: 'rescue wizard' starts the wizard, 'rescue --help' lists commands."
	echo "Logs: /var/log/rescue/ and 'journalctl -b'."
fi
