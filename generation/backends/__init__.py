"""Model backends: one protocol (base.Backend), chosen by the SLUICE_BACKEND dotted path."""
