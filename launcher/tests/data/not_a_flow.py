flow = 3
