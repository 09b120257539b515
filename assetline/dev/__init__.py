"""Local development tools: the Kafka broker launcher, a worker as a child process, the demo."""
