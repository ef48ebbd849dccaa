"""The restore wizard (Textual). ``rescue.wizard.app`` imports textual; the data model
(``model``) and the service adapter (``services``) do not, so unattended runs never load it."""
