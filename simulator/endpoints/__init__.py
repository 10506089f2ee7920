"""The simulator's HTTP endpoints: the admin API, the authorization server, the FHIR server, the notification endpoint."""
