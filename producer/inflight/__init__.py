"""What a pool has in flight: results received through one pub/sub listener, the connection
watched, and what given-up or collected work leaves on the server cleaned up."""
