"""Container orchestration engines formed over provisioned Docker hosts."""
