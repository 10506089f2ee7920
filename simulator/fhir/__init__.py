"""FHIR as the simulator serves it: search over test data, content negotiation, the patients' data."""
