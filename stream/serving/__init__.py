"""``pepnet serve``: an HTTP scoring service that follows the trainer's exports pass by pass."""
