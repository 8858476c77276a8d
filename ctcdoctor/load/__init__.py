"""From the user's spec to what the engine reads: the Setup (`spec`), normalised batches (`batches`),
chosen samples (`samples`), the device (`device`)."""
