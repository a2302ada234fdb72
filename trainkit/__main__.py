from trainkit.console import main

main()
