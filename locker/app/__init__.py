"""The application: the controller thread and the use cases."""
