"""The pack job: ranges → one CAR file and its piece CID, recorded in one transaction."""
