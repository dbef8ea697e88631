from tfnode.cli import main

main()
