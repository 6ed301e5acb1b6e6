from specnn.cli import main

main()
