"""GB/T 28181 device codes (国标编码): 20 decimal digits with a fixed structure.

    digits 1-8    centre code: province (2), city (2), county (2), grass-roots unit (2)
    digits 9-10   industry code
    digits 11-13  type code (111-130 front-end main devices such as DVR/NVR, 131-199
                  front-end peripherals such as cameras and IPCs, 200-299 platform devices,
                  300-399 centre terminals, 400-499 extensions, ...)
    digit 14      network identifier (0-4 video private network, 5 public-security network,
                  6 government extranet, 7 internet, 8 social resources, 9 reserved)
    digits 15-20  serial number

Why validate the structure and not only the length: the code is what a county's existing
视频监控联网平台 uses to find a camera; a code with a wrong area or a platform type code is a
typo that would silently attach the camera to another county's numbering.
"""

from __future__ import annotations

from dataclasses import dataclass

# Province-level codes of GB/T 2260 (mainland 11-65, Taiwan 71, Hong Kong 81, Macao 82).
PROVINCES = frozenset(
    {11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46, 50}
    | {51, 52, 53, 54, 61, 62, 63, 64, 65, 71, 81, 82}
)
CAMERA_TYPES = range(131, 200)  # front-end peripherals: camera 131, IPC 132, mobile 138 ...
DEVICE_TYPES = range(111, 131)  # front-end main devices: DVR 111, encoder 113, NVR 118 ...
NETWORKS = range(0, 9)  # 9 is reserved


@dataclass(frozen=True, slots=True)
class GbCode:
    code: str

    @property
    def admin_area(self) -> str:
        """The 6-digit administrative division (GB/T 2260), e.g. 621202 武都区."""
        return self.code[:6]

    @property
    def centre(self) -> str:
        return self.code[:8]

    @property
    def type_code(self) -> int:
        return int(self.code[10:13])

    @property
    def network(self) -> int:
        return int(self.code[13])


def check_gb_code(code: str, *, endpoint: bool = True) -> GbCode:
    """The parsed code, or ValueError naming what is wrong. `endpoint`: a camera (peripheral
    type 131-199 or, for an encoder channel, a front-end main device 111-130)."""
    if len(code) != 20 or not code.isascii() or not code.isdigit():
        raise ValueError(f"GB/T 28181 code must be 20 digits, got {code[:40]!r}")
    parsed = GbCode(code)
    if int(code[:2]) not in PROVINCES:
        raise ValueError(f"GB/T 28181 code {code}: {code[:2]} is not a province code")
    if code[2:4] == "00" and code[4:6] != "00":
        raise ValueError(f"GB/T 28181 code {code}: county {code[4:6]} without a city")
    kind = parsed.type_code
    if endpoint and kind not in CAMERA_TYPES and kind not in DEVICE_TYPES:
        raise ValueError(
            f"GB/T 28181 code {code}: type {kind:03d} is not a front-end device (111-199)"
        )
    if parsed.network not in NETWORKS:
        raise ValueError(f"GB/T 28181 code {code}: network digit 9 is reserved")
    return parsed


def make_gb_code(admin6: str, unit: int, type_code: int, serial: int, network: int = 0) -> str:
    """A code from its parts (the Longnan preset numbers its cameras with it)."""
    code = f"{admin6}{unit:02d}{0:02d}{type_code:03d}{network}{serial:06d}"
    check_gb_code(code)
    return code
