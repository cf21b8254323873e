"""Line assembly with a hard length limit. LF, CR and CRLF all end a line;
an overlong line is dropped up to its terminator and reported once."""

OVERFLOW = None   # passed to the callback instead of the line


class LineReader:
    def __init__(self, max_line=128):
        self.buf = bytearray(max_line)
        self.n = 0
        self.over = False
        self._cr = False

    def reset(self):
        self.n = 0
        self.over = False
        self._cr = False

    def feed(self, data, on_line):
        """Calls on_line(bytes) per complete line (terminator stripped), or
        on_line(OVERFLOW) for a line longer than max_line."""
        buf = self.buf
        cap = len(buf)
        for b in data:
            if b == 10 or b == 13:
                if b == 10 and self._cr:   # LF of a CRLF pair
                    self._cr = False
                    continue
                self._cr = b == 13
                if self.over:
                    self.over = False
                    self.n = 0
                    on_line(OVERFLOW)
                else:
                    line = bytes(buf[:self.n])
                    self.n = 0
                    on_line(line)
                continue
            self._cr = False
            if self.over:
                continue
            if b == 8 or b == 127:         # backspace/DEL from a terminal
                if self.n:
                    self.n -= 1
                continue
            if self.n >= cap:
                self.over = True
                continue
            buf[self.n] = b
            self.n += 1
