"""Writes the built-in question-answering sample (SQuAD v1.1 format) beside this script.

    python keras_transformer/text/data/make_qa_sample.py

Short paragraphs about Python standard-library modules, written for this
package, with questions whose answers are spans of the paragraph. Each answer
is looked up in its paragraph (its first occurrence as a whole word), so
`answer_start` is never typed by hand. Paragraphs of the last `VALIDATION` modules form the
validation file: no paragraph is in both.
"""

import json
import os
import re

HERE = os.path.dirname(os.path.abspath(__file__))
UNSEEN = 12

# (title, context, [(question, answer), ...])
PARAGRAPHS = [
    ("json", "The json module converts between Python objects and JSON text. The function json.dumps() returns a "
     "string, while json.dump() writes to an open file. To read JSON text back, call json.loads() on a string or "
     "json.load() on a file. Python dictionaries become JSON objects and lists become JSON arrays.",
     [("Which function returns a JSON string?", "json.dumps()"),
      ("Which function reads JSON from a string?", "json.loads()"),
      ("What do Python dictionaries become in JSON?", "JSON objects"),
      ("What do lists become?", "JSON arrays")]),
    ("os.path", "The os.path module works with file system paths. os.path.join() joins path components with the "
     "separator of the operating system. os.path.exists() returns True when a path refers to an existing file or "
     "directory. The function os.path.splitext() splits a path into a root and an extension.",
     [("Which function joins path components?", "os.path.join()"),
      ("What does os.path.exists() return for an existing file?", "True"),
      ("Which function splits a path into a root and an extension?", "os.path.splitext()")]),
    ("math", "The math module provides mathematical functions for real numbers. math.sqrt() returns the square "
     "root of a number, and math.floor() rounds down to the nearest integer. The constant math.pi holds the ratio "
     "of a circle's circumference to its diameter. For complex numbers, the cmath module offers similar functions.",
     [("Which function returns the square root of a number?", "math.sqrt()"),
      ("Which constant holds the ratio of a circle's circumference to its diameter?", "math.pi"),
      ("Which module offers functions for complex numbers?", "cmath"),
      ("Which function rounds down?", "math.floor()")]),
    ("random", "The random module generates pseudo-random numbers. random.random() returns a float from 0.0 up "
     "to 1.0, and random.randint() returns an integer between two bounds, both included. random.shuffle() "
     "reorders a list in place. For passwords and tokens, the documentation recommends the secrets module instead.",
     [("Which function reorders a list in place?", "random.shuffle()"),
      ("Which module is recommended for passwords and tokens?", "secrets"),
      ("Which function returns an integer between two bounds?", "random.randint()")]),
    ("collections", "The collections module offers specialised container types. A Counter counts hashable "
     "objects, a deque supports fast appends and pops at both ends, and a defaultdict calls a factory function to "
     "supply missing values. The namedtuple() function creates tuple subclasses with named fields.",
     [("Which type counts hashable objects?", "Counter"),
      ("Which container supports fast appends and pops at both ends?", "deque"),
      ("Which function creates tuple subclasses with named fields?", "namedtuple()"),
      ("What does a defaultdict call to supply missing values?", "a factory function")]),
    ("itertools", "The itertools module builds iterators for efficient looping. itertools.chain() treats several "
     "iterables as one sequence, itertools.count() counts up forever from a start value, and itertools.product() "
     "yields the Cartesian product of its inputs. The functions return lazy iterators rather than lists.",
     [("Which function treats several iterables as one sequence?", "itertools.chain()"),
      ("Which function yields the Cartesian product?", "itertools.product()"),
      ("What do the functions return instead of lists?", "lazy iterators")]),
    ("re", "The re module implements regular expressions. re.search() scans a string for the first location "
     "where a pattern matches, while re.match() only checks the beginning of the string. re.sub() replaces "
     "matches with a replacement string. Compiling a pattern once with re.compile() helps when it is used many "
     "times.",
     [("Which function only checks the beginning of the string?", "re.match()"),
      ("Which function replaces matches?", "re.sub()"),
      ("What does the re module implement?", "regular expressions")]),
    ("datetime", "The datetime module supplies classes for dates and times. A date object stores a year, month "
     "and day, and a timedelta represents the difference between two moments. The method datetime.now() returns "
     "the current local date and time, and strftime() formats a value as a string.",
     [("What represents the difference between two moments?", "timedelta"),
      ("Which method returns the current local date and time?", "datetime.now()"),
      ("Which method formats a value as a string?", "strftime()")]),
    ("pathlib", "The pathlib module represents file system paths as objects. Path.home() returns the home "
     "directory of the user, and the / operator joins path parts. A Path object can read a whole file with "
     "read_text() and list a directory with iterdir(). The module was added in Python 3.4.",
     [("Which method returns the home directory of the user?", "Path.home()"),
      ("Which method reads a whole file?", "read_text()"),
      ("In which Python version was pathlib added?", "3.4"),
      ("Which method lists a directory?", "iterdir()")]),
    ("subprocess", "The subprocess module starts new processes and connects to their pipes. subprocess.run() "
     "runs a command, waits for it to finish and returns a CompletedProcess instance. With check=True it raises "
     "CalledProcessError when the command exits with a non-zero status. The older os.system() function is less "
     "flexible.",
     [("Which function runs a command and waits for it to finish?", "subprocess.run()"),
      ("What does subprocess.run() return?", "a CompletedProcess instance"),
      ("Which exception is raised when the command exits with a non-zero status?", "CalledProcessError")]),
    ("logging", "The logging module lets libraries and applications record events. A logger is obtained with "
     "logging.getLogger(), and its messages pass through handlers that send them to files, streams or other "
     "destinations. The default level is WARNING, so debug and info messages are not shown unless the level is "
     "lowered.",
     [("Which function returns a logger?", "logging.getLogger()"),
      ("What is the default level?", "WARNING"),
      ("What sends messages to files, streams or other destinations?", "handlers")]),
    ("csv", "The csv module reads and writes comma-separated values. csv.reader() returns an object that "
     "iterates over the lines of a file, and csv.writer() turns rows into delimited strings. The DictReader class "
     "maps each row to a dictionary whose keys come from the header line.",
     [("Which class maps each row to a dictionary?", "DictReader"),
      ("Where do the keys of the dictionary come from?", "the header line"),
      ("Which function turns rows into delimited strings?", "csv.writer()")]),
    ("sqlite3", "The sqlite3 module is an interface to the SQLite database engine, which keeps a whole database "
     "in a single file. sqlite3.connect() opens a connection, and a cursor executes SQL statements. Changes are "
     "saved only after commit() is called on the connection.",
     [("Which function opens a connection?", "sqlite3.connect()"),
      ("Where does SQLite keep a whole database?", "in a single file"),
      ("What must be called to save changes?", "commit()"),
      ("What executes SQL statements?", "a cursor")]),
    ("functools", "The functools module holds higher-order functions. functools.lru_cache() memoizes a function "
     "so that repeated calls with the same arguments are answered from a cache. functools.partial() fixes some "
     "arguments of a function and returns a new callable, and functools.reduce() folds an iterable into a single "
     "value.",
     [("Which function folds an iterable into a single value?", "functools.reduce()"),
      ("Which function fixes some arguments of a function?", "functools.partial()"),
      ("Which decorator memoizes a function?", "functools.lru_cache()")]),
    ("unittest", "The unittest module is the testing framework of the standard library. Tests are methods of a "
     "class that derives from unittest.TestCase, and their names start with test. assertEqual() checks that two "
     "values are equal. Running python -m unittest discovers and runs the tests.",
     [("Which class do test classes derive from?", "unittest.TestCase"),
      ("Which method checks that two values are equal?", "assertEqual()"),
      ("What do the names of test methods start with?", "test")]),
    ("argparse", "The argparse module parses command-line arguments. A program creates an ArgumentParser, "
     "declares its options with add_argument(), and calls parse_args() to turn sys.argv into a namespace. The "
     "module writes help and usage messages automatically and reports errors when users give invalid arguments.",
     [("Which method declares an option?", "add_argument()"),
      ("What does parse_args() turn sys.argv into?", "a namespace"),
      ("What does a program create first?", "ArgumentParser")]),
    ("threading", "The threading module runs code in several threads of one process. A Thread object starts "
     "with start() and can be waited for with join(). A Lock protects shared data, since only one thread can hold "
     "it at a time. In CPython the global interpreter lock lets only one thread execute Python bytecode at once.",
     [("Which method waits for a thread?", "join()"),
      ("What protects shared data?", "Lock"),
      ("What lets only one thread execute Python bytecode at once?", "the global interpreter lock")]),
    ("zipfile", "The zipfile module creates, reads and extracts ZIP archives. A ZipFile object opened in mode "
     "\"w\" writes a new archive, and extractall() unpacks every member into a directory. The namelist() method "
     "lists the names of the members. Compression uses the zlib module when ZIP_DEFLATED is chosen.",
     [("Which method unpacks every member?", "extractall()"),
      ("Which method lists the names of the members?", "namelist()"),
      ("Which module is used when ZIP_DEFLATED is chosen?", "zlib")]),
    ("hashlib", "The hashlib module computes secure hashes and message digests. hashlib.sha256() returns a hash "
     "object, update() feeds it bytes, and hexdigest() returns the digest as a string of hexadecimal digits. The "
     "older md5 algorithm should not be used for security.",
     [("Which method feeds bytes to a hash object?", "update()"),
      ("Which method returns the digest as hexadecimal digits?", "hexdigest()"),
      ("Which algorithm should not be used for security?", "md5")]),
    ("time", "The time module gives access to clocks. time.time() returns the seconds since the epoch as a "
     "float, time.sleep() suspends the calling thread for a number of seconds, and time.perf_counter() is the "
     "clock to use for measuring short durations.",
     [("Which function suspends the calling thread?", "time.sleep()"),
      ("Which clock measures short durations?", "time.perf_counter()"),
      ("What does time.time() return?", "the seconds since the epoch")]),
    ("shutil", "The shutil module offers high-level file operations. shutil.copy() copies a file, "
     "shutil.rmtree() deletes a whole directory tree, and shutil.move() moves a file or directory to another "
     "location. shutil.which() finds the path of an executable program.",
     [("Which function deletes a whole directory tree?", "shutil.rmtree()"),
      ("Which function finds the path of an executable?", "shutil.which()"),
      ("Which function copies a file?", "shutil.copy()")]),
    ("tempfile", "The tempfile module creates temporary files and directories. TemporaryDirectory() removes the "
     "directory and its contents when the context manager exits, and NamedTemporaryFile() returns a file that has "
     "a visible name. mkstemp() leaves the cleanup to the caller.",
     [("Which function leaves the cleanup to the caller?", "mkstemp()"),
      ("When is the temporary directory removed?", "when the context manager exits"),
      ("Which function returns a file that has a visible name?", "NamedTemporaryFile()")]),
    ("dataclasses", "The dataclasses module generates special methods for classes. The @dataclass decorator adds "
     "__init__(), __repr__() and __eq__() from the annotated fields. field() customises a single field, for "
     "example with a default_factory for mutable defaults. asdict() converts an instance to a dictionary. The "
     "module arrived in Python 3.7.",
     [("Which function converts an instance to a dictionary?", "asdict()"),
      ("In which Python version did the dataclasses module arrive?", "3.7"),
      ("What is used for mutable defaults?", "default_factory")]),
    ("enum", "The enum module defines enumerations, sets of symbolic names bound to unique values. A class that "
     "derives from Enum lists its members as class attributes. IntEnum members also compare equal to integers, "
     "and auto() picks a value for each member automatically.",
     [("Which members compare equal to integers?", "IntEnum"),
      ("Which function picks a value automatically?", "auto()"),
      ("What are enumerations?", "sets of symbolic names bound to unique values")]),
    ("heapq", "The heapq module implements the heap queue algorithm, also called the priority queue algorithm. "
     "heapq.heappush() adds an item while keeping the heap invariant, and heapq.heappop() removes and returns the "
     "smallest item. heapq.nlargest() returns the n largest elements of an iterable.",
     [("Which function removes and returns the smallest item?", "heapq.heappop()"),
      ("What is the heap queue algorithm also called?", "the priority queue algorithm"),
      ("Which function returns the n largest elements?", "heapq.nlargest()")]),
    ("bisect", "The bisect module keeps a list in sorted order without sorting it again after each insertion. "
     "bisect.bisect_left() finds the position where an item should be inserted, and bisect.insort() inserts the "
     "item at that position. The searches take logarithmic time.",
     [("Which function inserts the item?", "bisect.insort()"),
      ("How much time do the searches take?", "logarithmic time"),
      ("Which function finds the insertion position?", "bisect.bisect_left()")]),
    ("copy", "The copy module makes shallow and deep copies. copy.copy() builds a new compound object that "
     "refers to the same children, while copy.deepcopy() copies the children recursively. A class can control "
     "copying by defining __copy__() and __deepcopy__().",
     [("Which function copies the children recursively?", "copy.deepcopy()"),
      ("What does the copy module make?", "shallow and deep copies"),
      ("Which function builds a new object that refers to the same children?", "copy.copy()")]),
    ("pickle", "The pickle module serialises Python objects into a byte stream and back. pickle.dumps() returns "
     "the bytes of an object, and pickle.loads() rebuilds the object. Unpickling data from an untrusted source is "
     "unsafe, because it can execute arbitrary code. The json module is a safer choice for data exchange.",
     [("Which function rebuilds the object?", "pickle.loads()"),
      ("Why is unpickling untrusted data unsafe?", "it can execute arbitrary code"),
      ("Which module is safer for data exchange?", "json")]),
    ("urllib.parse", "The urllib.parse module splits URLs into components and builds them again. urlparse() "
     "returns six parts, among them the scheme and the network location. quote() replaces special characters with "
     "%xx escapes, and urlencode() turns a dictionary into a query string.",
     [("Which function turns a dictionary into a query string?", "urlencode()"),
      ("How many parts does urlparse() return?", "six"),
      ("Which function replaces special characters with escapes?", "quote()")]),
    ("socket", "The socket module is the low-level networking interface. socket.socket() creates an endpoint, "
     "bind() attaches it to an address, listen() lets a server accept connections, and connect() opens a "
     "connection from a client. AF_INET selects IPv4 addresses.",
     [("Which method attaches a socket to an address?", "bind()"),
      ("What does AF_INET select?", "IPv4 addresses"),
      ("Which method opens a connection from a client?", "connect()")]),
    ("asyncio", "The asyncio module writes concurrent code with the async and await syntax. asyncio.run() runs "
     "a coroutine and closes the event loop afterwards. asyncio.gather() runs several awaitables concurrently, and "
     "asyncio.sleep() pauses a coroutine without blocking the loop.",
     [("Which function runs several awaitables concurrently?", "asyncio.gather()"),
      ("What does asyncio.run() close afterwards?", "the event loop"),
      ("Which function pauses a coroutine?", "asyncio.sleep()")]),
    ("typing", "The typing module supports type hints. Optional[int] means an int or None, and Callable "
     "describes functions by their argument and return types. Type checkers such as mypy read the hints, but the "
     "interpreter does not enforce them at run time.",
     [("What does Optional[int] mean?", "an int or None"),
      ("What describes functions by their argument and return types?", "Callable"),
      ("Which type checker is named?", "mypy")]),
    ("statistics", "The statistics module calculates statistics of numeric data. statistics.mean() returns the "
     "arithmetic mean, statistics.median() returns the middle value, and statistics.stdev() returns the sample "
     "standard deviation. The functions accept any iterable of numbers.",
     [("Which function returns the middle value?", "statistics.median()"),
      ("What does statistics.mean() return?", "the arithmetic mean"),
      ("Which function returns the sample standard deviation?", "statistics.stdev()")]),
    ("string", "The string module holds constants and the Template class. string.ascii_letters contains the "
     "lowercase and uppercase letters, and string.digits contains the characters 0 to 9. Template strings use $ "
     "placeholders, which makes them simpler than format strings.",
     [("Which constant contains the characters 0 to 9?", "string.digits"),
      ("What do Template strings use?", "$ placeholders"),
      ("Which constant contains the lowercase and uppercase letters?", "string.ascii_letters")]),
    ("gzip", "The gzip module compresses and decompresses files in the format of the gzip program. gzip.open() "
     "returns a file object, in binary mode by default, and gzip.compress() compresses a bytes object in memory. "
     "The module relies on zlib.",
     [("Which function compresses a bytes object in memory?", "gzip.compress()"),
      ("Which module does gzip rely on?", "zlib"),
      ("What mode does gzip.open() use by default?", "binary mode")]),
    ("glob", "The glob module finds path names that match a pattern, using the rules of the Unix shell. The "
     "pattern *.txt matches every file ending in .txt, and with recursive=True the pattern ** also matches "
     "subdirectories. The results come back in arbitrary order.",
     [("Whose rules does the glob module use?", "the Unix shell"),
      ("In what order do the results come back?", "arbitrary order"),
      ("Which argument makes the pattern match subdirectories?", "recursive=True")]),
    ("struct", "The struct module converts between Python values and C structs represented as bytes. "
     "struct.pack() returns bytes for a format string and values, struct.unpack() returns a tuple, and "
     "struct.calcsize() gives the size of a format in bytes. The character < selects little-endian byte order.",
     [("What does struct.unpack() return?", "a tuple"),
      ("Which function gives the size of a format?", "struct.calcsize()"),
      ("Which byte order does the character < select?", "little-endian")]),
    ("contextlib", "The contextlib module provides utilities for the with statement. The @contextmanager "
     "decorator turns a generator function into a context manager, suppress() ignores the exceptions it is given, "
     "and ExitStack combines several context managers whose number is known only at run time.",
     [("Which decorator turns a generator function into a context manager?", "@contextmanager"),
      ("Which utility ignores exceptions?", "suppress()"),
      ("What combines several context managers?", "ExitStack")]),
    ("io", "The io module deals with streams of text and bytes. StringIO keeps text in memory and BytesIO does "
     "the same for bytes. Files opened in text mode decode bytes with an encoding, and the default encoding "
     "depends on the platform.",
     [("What keeps text in memory?", "StringIO"),
      ("What does the default encoding depend on?", "the platform"),
      ("Which class keeps bytes in memory?", "BytesIO")]),
    ("sys", "The sys module exposes values of the interpreter. sys.argv holds the command-line arguments, "
     "sys.path lists the directories searched for modules, and sys.exit() ends the program with an exit status. "
     "sys.version describes the running Python version.",
     [("What lists the directories searched for modules?", "sys.path"),
      ("Which function ends the program?", "sys.exit()"),
      ("What holds the command-line arguments?", "sys.argv")]),
    # --- paragraphs of qa_sample_unseen.json (the last UNSEEN) ---
    ("base64", "The base64 module encodes binary data as printable ASCII characters. base64.b64encode() returns "
     "the encoded bytes and base64.b64decode() reverses it. The urlsafe variants replace + and / with - and _ so "
     "that the result fits in URLs.",
     [("Which function reverses the encoding?", "base64.b64decode()"),
      ("Which function returns the encoded bytes?", "base64.b64encode()"),
      ("What does the base64 module encode binary data as?", "printable ASCII characters")]),
    ("textwrap", "The textwrap module formats paragraphs of text. textwrap.wrap() splits a paragraph into lines "
     "of at most a given width, textwrap.fill() returns those lines joined into one string, and textwrap.dedent() "
     "removes common leading whitespace.",
     [("Which function removes common leading whitespace?", "textwrap.dedent()"),
      ("Which function splits a paragraph into lines?", "textwrap.wrap()"),
      ("What does the textwrap module format?", "paragraphs of text")]),
    ("operator", "The operator module exports functions that correspond to the operators of Python. "
     "operator.add() does the same as a + b, and operator.itemgetter() returns a callable that fetches an item "
     "from its operand. These functions are handy as key arguments for sorted().",
     [("Which function returns a callable that fetches an item?", "operator.itemgetter()"),
      ("Which function does the same as a + b?", "operator.add()"),
      ("For which function are they handy as key arguments?", "sorted()")]),
    ("uuid", "The uuid module generates universally unique identifiers. uuid.uuid4() makes a random identifier, "
     "while uuid.uuid1() uses the host address and the current time. The str() of a UUID is a string of 32 "
     "hexadecimal digits in five groups.",
     [("Which function makes a random identifier?", "uuid.uuid4()"),
      ("How many hexadecimal digits does the string of a UUID have?", "32"),
      ("What does uuid.uuid1() use?", "the host address and the current time")]),
    ("fractions", "The fractions module supports rational number arithmetic. A Fraction is built from a "
     "numerator and a denominator, or from a string such as 3/7. limit_denominator() finds the closest fraction "
     "with a bounded denominator.",
     [("Which method finds the closest fraction with a bounded denominator?", "limit_denominator()"),
      ("What does the fractions module support?", "rational number arithmetic"),
      ("What is a Fraction built from?", "a numerator and a denominator")]),
    ("decimal", "The decimal module performs decimal floating point arithmetic with exact results for values "
     "such as 0.1. A Decimal keeps its precision from the current context, and getcontext() returns that context. "
     "It suits financial applications where binary floats would round badly.",
     [("Which function returns the current context?", "getcontext()"),
      ("Which applications does decimal suit?", "financial applications")]),
    ("queue", "The queue module implements multi-producer, multi-consumer queues for threads. Queue is "
     "first-in, first-out, LifoQueue returns the most recent item first, and PriorityQueue returns the lowest "
     "entry first. get() blocks until an item is available.",
     [("Which queue returns the most recent item first?", "LifoQueue"),
      ("Which method blocks until an item is available?", "get()"),
      ("Which queue returns the lowest entry first?", "PriorityQueue")]),
    ("secrets", "The secrets module generates random numbers suitable for passwords and security tokens. "
     "secrets.token_hex() returns a random text string in hexadecimal, and secrets.choice() picks an element from "
     "a sequence. It uses the best source of randomness that the operating system provides.",
     [("Which function picks an element from a sequence?", "secrets.choice()"),
      ("Which function returns a random string in hexadecimal?", "secrets.token_hex()"),
      ("What source of randomness does it use?", "the best source of randomness that the operating system provides")]),
    ("platform", "The platform module reports details of the machine and the interpreter. platform.system() "
     "returns the name of the operating system, such as Linux or Windows, and platform.python_version() returns "
     "the Python version as a string.",
     [("Which function returns the name of the operating system?", "platform.system()"),
      ("Which function returns the Python version?", "platform.python_version()")]),
    ("calendar", "The calendar module prints calendars like the Unix cal program. calendar.isleap() tells "
     "whether a year is a leap year, and calendar.monthrange() returns the weekday of the first day and the number "
     "of days in a month. Weeks start on Monday by default.",
     [("Which function tells whether a year is a leap year?", "calendar.isleap()"),
      ("On which day do weeks start by default?", "Monday"),
      ("Which program does the calendar module resemble?", "the Unix cal program")]),
    ("difflib", "The difflib module compares sequences. difflib.unified_diff() produces the changes between two "
     "lists of lines in the unified format, and SequenceMatcher measures how similar two sequences are with its "
     "ratio() method.",
     [("Which method measures how similar two sequences are?", "ratio()"),
      ("Which function produces changes in the unified format?", "difflib.unified_diff()")]),
    ("pprint", "The pprint module pretty-prints data structures. pprint.pprint() prints a nested value with one "
     "element per line when it does not fit on a line, and the width argument sets the line length, 80 characters "
     "by default.",
     [("What is the default line length?", "80 characters"),
      ("Which argument sets the line length?", "width")]),
]

# Training questions asked in other words, with the same answers: qa_sample_dev.json.
REPHRASED = {
    "json": [("What function gives back a JSON string?", "json.dumps()"),
             ("In JSON, what do Python lists turn into?", "JSON arrays")],
    "os.path": [("What function combines path components?", "os.path.join()")],
    "math": [("What function computes the square root?", "math.sqrt()"),
             ("What module has functions for complex numbers?", "cmath")],
    "random": [("What function shuffles a list in place?", "random.shuffle()")],
    "collections": [("What type is used to count hashable objects?", "Counter")],
    "itertools": [("What function gives the Cartesian product of its inputs?", "itertools.product()")],
    "re": [("What function replaces the matches of a pattern?", "re.sub()")],
    "datetime": [("What method gives the current local date and time?", "datetime.now()")],
    "pathlib": [("Which Python version added pathlib?", "3.4")],
    "subprocess": [("What exception does a non-zero exit status raise?", "CalledProcessError")],
    "logging": [("Which function gives you a logger?", "logging.getLogger()")],
    "csv": [("What class turns each row into a dictionary?", "DictReader")],
    "sqlite3": [("What function is used to open a connection?", "sqlite3.connect()"),
                ("What is called on the connection to save changes?", "commit()")],
    "functools": [("What function folds an iterable to one value?", "functools.reduce()")],
    "unittest": [("Test classes derive from which class?", "unittest.TestCase")],
    "argparse": [("With which method are options declared?", "add_argument()")],
    "threading": [("What method is used to wait for a thread?", "join()")],
    "zipfile": [("What method extracts every member into a directory?", "extractall()")],
    "hashlib": [("What method gives the digest as hexadecimal digits?", "hexdigest()")],
    "time": [("What function makes the calling thread pause?", "time.sleep()")],
    "shutil": [("What function removes a whole directory tree?", "shutil.rmtree()")],
    "tempfile": [("What function returns a file with a visible name?", "NamedTemporaryFile()")],
    "dataclasses": [("In which version of Python did dataclasses arrive?", "3.7")],
    "enum": [("What function chooses a value for each member automatically?", "auto()")],
    "heapq": [("What function returns the smallest item and removes it?", "heapq.heappop()")],
    "bisect": [("What function inserts an item at its sorted position?", "bisect.insort()")],
    "copy": [("What function makes a recursive copy of the children?", "copy.deepcopy()")],
    "pickle": [("What function rebuilds an object from its bytes?", "pickle.loads()")],
    "urllib.parse": [("What function builds a query string from a dictionary?", "urlencode()")],
    "socket": [("What method binds a socket to an address?", "bind()")],
    "asyncio": [("What function runs awaitables concurrently?", "asyncio.gather()")],
    "typing": [("Which type checker reads the hints?", "mypy")],
    "statistics": [("What function gives the middle value?", "statistics.median()")],
    "string": [("What constant holds the characters 0 to 9?", "string.digits")],
    "gzip": [("What module is gzip based on?", "zlib")],
    "glob": [("Which argument lets the pattern match subdirectories?", "recursive=True")],
    "struct": [("What function returns the size of a format in bytes?", "struct.calcsize()")],
    "contextlib": [("What combines context managers whose number is known only at run time?", "ExitStack")],
    "io": [("What class keeps text in memory?", "StringIO")],
    "sys": [("Which function ends the program with an exit status?", "sys.exit()")],
}


def squad(paragraphs, prefix=""):
    data = []
    for title, context, questions in paragraphs:
        qas = []
        for number, (question, answer) in enumerate(questions, start=1):
            found = re.search(rf"(?<!\w){re.escape(answer)}(?!\w)", context)
            if found is None:
                raise SystemExit(f"{title}: answer {answer!r} is not a whole word of the paragraph")
            start = found.start()
            qas.append({"id": f"{title}-{prefix}{number}", "question": question,
                        "answers": [{"text": answer, "answer_start": start}]})
        data.append({"title": title, "paragraphs": [{"context": context, "qas": qas}]})
    return {"version": "1.1", "data": data}


def main():
    train = PARAGRAPHS[:-UNSEEN]
    asked = {title: {answer for _, answer in questions} for title, _, questions in train}
    for title, questions in REPHRASED.items():
        if not {answer for _, answer in questions} <= asked[title]:
            raise SystemExit(f"{title}: a rephrased question has an answer no training question has")
    rephrased = [(title, context, REPHRASED[title]) for title, context, _ in train]
    for name, part, prefix in (("qa_sample_train.json", train, ""), ("qa_sample_dev.json", rephrased, "r"),
                               ("qa_sample_unseen.json", PARAGRAPHS[-UNSEEN:], "")):
        with open(os.path.join(HERE, name), "w", encoding="utf-8") as handle:
            json.dump(squad(part, prefix), handle, indent=1, ensure_ascii=False)
            handle.write("\n")
        print(f"{name}: {len(part)} paragraphs, {sum(len(q) for _, _, q in part)} questions")


if __name__ == "__main__":
    main()
